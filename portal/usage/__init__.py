"""Usage received from engines: per engine, day and bundle, how many conversations
were scored, flagged and reviewed, the verdict mix and a histogram of scores."""
