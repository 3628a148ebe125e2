"""The `clipmesh` command line: run services, the local mesh, and talk to a running mesh."""
