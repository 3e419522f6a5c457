"""The apache kind (docs/apache.md). Kept empty: importing its settings loads nothing else."""
