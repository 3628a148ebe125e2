"""The runtime every clipmesh service shares: config, server bootstrap, errors, metrics,
tracing, logging and channels. Services never copy these; they import them."""
