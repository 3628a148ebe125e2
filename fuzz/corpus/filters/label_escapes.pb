


labels.a:bq"\
	