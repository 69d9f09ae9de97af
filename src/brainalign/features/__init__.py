"""brainalign.features"""
