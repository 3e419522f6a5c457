"""lbctl: keep load balancers in step with service discovery."""

__version__ = "0.1.0"
