"""The bigip kind (docs/architecture.md#where-each-kind-lives). Kept empty: importing its settings loads nothing else."""
