"""brainalign.analysis"""
