"""Local stand-ins for external providers, and for clipmesh's own services where the SDK is
under test, speaking their real wire protocols on 127.0.0.1."""
