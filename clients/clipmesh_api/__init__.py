"""Generated gRPC stubs and messages for clipmesh. Do not edit: run `make generate`."""
