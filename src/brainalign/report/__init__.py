"""brainalign.report"""
