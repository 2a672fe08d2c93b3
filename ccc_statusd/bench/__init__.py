"""`make bench`: the daemon measured against baselines taken in the same run (issue 9).

This package owns the benchmark: ``baselines`` (measuring sticks: a minimal Trio relay and a
plain-Python Unix-socket ping-pong), ``load`` (the Trio load generator and ``/proc`` sampling),
``cli`` (cold start-up of the ``ccc`` send path) and ``__main__`` (the runner that prints the one
table). Nothing here is imported by the daemon or the CLI.
"""
