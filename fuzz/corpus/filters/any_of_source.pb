

source
ingested
	generated