"""pytest-reachability: post-deploy verification of web services on Kubernetes."""

__version__ = "0.1.0"
