"""The PyTorch twin: ConstNet, LeakyNet and the MLP in PyTorch, started from the JAX initializers'
numbers and trained on the same batches with the same recipe, so a run differs from its JAX twin only in
the framework's kernels. Needs the `torch` extra; nothing outside this package imports torch."""
