"""brainalign.study: brain data + stimuli of one subject as one StudyData (time series or item betas, design)."""
