#!/usr/bin/env python3
"""Serve a GGUF over HTTP with xllamacpp's embedded llama.cpp server (the PyPI wheel).

Started by `bosun local serve` and `bosun run --local`; usable on its own:

    PYTHONPATH=~/.cache/bosun/xllamacpp/current python3 scripts/xserve.py MODEL.gguf \
        [--port 8081] [--host 127.0.0.1] [--threads 2] [--ctx 8192] [--template FILE] [--alias NAME]

Serves llama.cpp's OpenAI-compatible API (/v1/chat/completions with tools, /v1/models, /health) until
SIGTERM / SIGINT. One slot, so the prompt prefix cache is reused turn after turn.
"""
import argparse
import os
import signal
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(prog="xserve", description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8081)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=8192)
    ap.add_argument("--template", help="a Jinja chat template file that replaces the GGUF's own")
    ap.add_argument("--alias", help="the model name /v1/models reports")
    a = ap.parse_args()

    # fail fast and clearly, before signals are blocked
    if not os.path.isfile(a.model):
        print(f"xserve: no such model file: {a.model}", file=sys.stderr)
        return 2
    try:
        import xllamacpp as xlc
    except ImportError as e:
        print(f"xserve: cannot import xllamacpp ({e}); run scripts/install-local-model.sh", file=sys.stderr)
        return 3

    # block the stop signals now so none is lost while the model loads; sigwait picks them up
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

    p = xlc.CommonParams()
    p.model.path = a.model
    p.n_ctx = a.ctx
    p.use_jinja = True
    p.hostnames = [a.host]
    p.port = a.port
    p.cpuparams.n_threads = a.threads
    p.cpuparams_batch.n_threads = a.threads
    p.n_parallel = 1
    if a.alias:
        p.model_alias = {a.alias}
    if a.template:
        with open(a.template, encoding="utf-8") as f:
            p.chat_template = f.read()

    t0 = time.time()
    s = xlc.Server(p)
    print("xserve: loaded %s in %.2fs; listening on %s" % (a.model, time.time() - t0, s.listening_address), flush=True)
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
    # exit at once: a graceful shutdown waits for the batch in progress (tens of seconds for a
    # long prompt on one thread), and the server holds nothing worth saving
    print("xserve: stopping", flush=True)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
