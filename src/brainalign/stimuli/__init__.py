"""brainalign.stimuli"""
