"""The training loop and its infrastructure, shared by every task and never branching on one: the loop
(``loop``: ``fit``, ``evaluate``), optimiser and schedule (``optim``), checkpoints (``checkpoint``: safe
loading, atomic saving, RNG state), run folders (``run_dir``), the metrics log (``run_log``) and
multi-process training (``distributed``)."""
