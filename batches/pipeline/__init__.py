"""A batch's life after the API accepted it, in the order it happens:

enqueue     hands work to the django-q2 clusters once the transaction commits
ingest      validates the input file and stores one row per request, in chunks
execution   runs chunks on the engine, recording results as they finish
finalize    writes the output and error files and closes the batch
reconcile   every minute, puts right what a dead worker or the clock left undone
heartbeats  who is alive: worker identity, chunk lease holders, readiness
workers     what each worker process does beside its tasks: beats, model, hand-back

Entry points for the workers are in batches.tasks (their dotted paths are
stored in queued tasks and schedules, so they do not move).
"""
