"""brainalign.brain"""
