"""What reads real kernels: the ftrace text reader (``ftrace``), kpageflags
dumps (``kpageflags``), the placement replay (``replay``, ``placement``), the
what-if replay (``whatif``) and tracefs-format rendering (``tracefmt``)."""
