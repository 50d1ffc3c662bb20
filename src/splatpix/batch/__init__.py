"""Folders of images as independent jobs: ``splatpix batch encode|fit`` and ``splatpix eval rd --ray``.

``tasks``: what one job runs (an image's encode or fit, in a worker-local temporary folder) and the
:class:`~.tasks.Outcome` it returns (its manifest record and its output files as bytes); ``executors``: where jobs
run (in this process, in local worker processes, or as Ray tasks on a cluster); ``runner``: the loop that submits
them, retries a job whose worker died, and stops cleanly on Ctrl-C; ``manifest``: the per-run JSON record of every
job; ``folder``: ``batch encode`` and ``batch fit`` over a folder (resumable). Workers never write to the output
folder: the driver writes every output atomically, so only the driver's machine needs to see the files.
"""
