"""`python -m clipmesh` is the `clipmesh` console script."""

from clipmesh.cli.main import main

main()
