"""Local stand-ins for external providers, speaking their real wire protocols on 127.0.0.1."""
