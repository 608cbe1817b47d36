#!/usr/bin/env python3
"""Serving benchmark for `longview serve`, in the style of `vllm bench serve`.

Sends random-length requests to the OpenAI-compatible streaming `/v1/completions` endpoint
from one asyncio process and reports latency and throughput with vLLM's definitions:

  TTFT  time from sending the request to the first streamed chunk that carries text
  ITL   gaps between consecutive text-carrying chunks of one request (every gap is one
        sample; a chunk may carry more than one token when the server holds back a partial
        UTF-8 sequence, as vLLM's client also counts it)
  E2EL  time from sending the request to its last text-carrying chunk
  TPOT  (E2EL - TTFT) / (output_tokens - 1), per request with more than one output token
  output_tokens / input_tokens: from the server's `usage` (stream_options.include_usage)
  request / output / total token throughput: completed requests, output tokens and
        input + output tokens of successful requests, each divided by the benchmark duration
        (first request sent to last response finished)

Workload ("random" dataset, like vLLM's): each request's input length is drawn uniformly from
[L*(1-r), L*(1+r)] with L = --random-input-len and r = --random-range-ratio (likewise the output
length), at least 1. The prompt is either

  --prompt-format token-ids (default): a list of that many token ids drawn uniformly from
      [--token-id-low, --vocab-size), sent as the OpenAI "prompt" token list; the server uses it
      verbatim (no BOS), so input lengths are exact.
  --prompt-format words: that many words drawn from a fixed list of common English words and
      joined by spaces; the server tokenizes it (and adds BOS), so the input length is roughly,
      not exactly, the number of words. The report uses the server's prompt_tokens either way.

Every request sets max_tokens to its output length and "ignore_eos": true, so each output has
exactly the asked length. Requests are released as a Poisson process at --request-rate
(--burstiness other than 1 gives gamma-distributed gaps, as in vLLM) or all at once
(--request-rate inf, the default), and --max-concurrency caps how many are in flight.

Bounded: every request has a total time limit (--timeout), and only loopback servers are
accepted (the host of --base-url must be localhost or a loopback address).

Needs only the Python standard library and httpx (the `httpx2` package that the openai SDK
in .venv depends on, or `httpx`).

Example (server: build/server/longview serve --port 8000):
  .venv/bin/python tools/bench/serve_bench.py --base-url http://127.0.0.1:8000 \
      --num-prompts 32 --random-input-len 128 --random-output-len 64 --max-concurrency 8 \
      --result-file /tmp/bench.json
"""
import argparse
import asyncio
import datetime
import ipaddress
import json
import math
import os
import random
import resource
import socket
import statistics
import sys
import time
import urllib.parse

try:
    import httpx2 as httpx
except ImportError:  # pragma: no cover - the plain httpx package has the same API
    import httpx

WORDS = (
    "the of and to in is was for on that with as by at from his it an were are which this be "
    "has or had first one their its new after but who not they have her she two been other when "
    "there all during into school time may years more most only over city some world would where "
    "later up such used many can state about national out known university united then made "
    "team american than film under second would between year three these also part game music "
    "river house water light north south east west small large early long name people work "
    "family group place because while same number book line each three high point great old "
    "life day way home back place right left power country history system public program "
    "local death order case side member party local government general company season club "
    "war area series album band song station league village county church court road field"
).split()
WORDS = tuple(dict.fromkeys(WORDS))  # unique, in order


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def percentile(sorted_values, p):
    """numpy.percentile's default (linear interpolation) on an already sorted list."""
    if not sorted_values:
        return 0.0
    k = (len(sorted_values) - 1) * p / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def summarize(values_s, percentiles):
    """Mean, median, std and percentiles of a list of seconds, in milliseconds."""
    ms = sorted(v * 1000.0 for v in values_s)
    out = {
        "mean": statistics.fmean(ms) if ms else 0.0,
        "median": statistics.median(ms) if ms else 0.0,
        "std": statistics.pstdev(ms) if ms else 0.0,
    }
    for p in percentiles:
        out[f"p{p:g}"] = percentile(ms, p)
    return out


def sample_lengths(rng, mean, ratio, n):
    lo = max(1, int(mean * (1.0 - ratio)))
    hi = max(lo, int(mean * (1.0 + ratio)))
    return [rng.randint(lo, hi) for _ in range(n)]


def build_requests(args):
    rng = random.Random(args.seed)
    in_lens = sample_lengths(rng, args.random_input_len, args.random_range_ratio, args.num_prompts)
    out_lens = sample_lengths(rng, args.random_output_len, args.random_range_ratio,
                              args.num_prompts)
    reqs = []
    for i, (il, ol) in enumerate(zip(in_lens, out_lens)):
        if args.prompt_format == "token-ids":
            prompt = [rng.randrange(args.token_id_low, args.vocab_size) for _ in range(il)]
        else:
            prompt = " ".join(rng.choice(WORDS) for _ in range(il))
        reqs.append({"index": i, "prompt": prompt, "input_len": il, "output_len": ol})
    return reqs


async def send_one(client, args, req, headers):
    """One streaming completion; returns its record (times in seconds until converted)."""
    rec = await stream_one(client, args, req, headers)
    rec["end"] = time.perf_counter()
    return rec


async def stream_one(client, args, req, headers):
    payload = {
        "model": args.model,
        "prompt": req["prompt"],
        "max_tokens": req["output_len"],
        "temperature": args.temperature,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
    }
    rec = {"index": req["index"], "expected_input_len": req["input_len"],
           "expected_output_len": req["output_len"], "success": False, "error": "",
           "prompt_tokens": None, "output_tokens": None, "ttft": 0.0, "e2el": 0.0, "itl": [],
           "chunks": 0, "text_chars": 0}
    st = time.perf_counter()
    rec["start"] = st
    last = st
    finish_reason = None
    done = False
    try:
        async with asyncio.timeout(args.timeout):
            async with client.stream("POST", args.url, json=payload, headers=headers) as resp:
                if resp.status_code != 200:
                    body = (await resp.aread())[:500].decode("utf-8", "replace")
                    rec["error"] = f"HTTP {resp.status_code}: {body}"
                    return rec
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True
                        break
                    chunk = json.loads(data)
                    if "error" in chunk:
                        rec["error"] = f"stream error: {json.dumps(chunk['error'])[:500]}"
                        return rec
                    choices = chunk.get("choices") or []
                    if choices:
                        text = choices[0].get("text") or ""
                        if choices[0].get("finish_reason"):
                            finish_reason = choices[0]["finish_reason"]
                        if text:
                            ts = time.perf_counter()
                            if rec["chunks"] == 0:
                                rec["ttft"] = ts - st
                            else:
                                rec["itl"].append(ts - last)
                            last = ts
                            rec["chunks"] += 1
                            rec["text_chars"] += len(text)
                    usage = chunk.get("usage")
                    if usage:
                        rec["prompt_tokens"] = usage.get("prompt_tokens")
                        rec["output_tokens"] = usage.get("completion_tokens")
    except TimeoutError:
        rec["error"] = f"timed out after {args.timeout} s"
        return rec
    except (httpx.HTTPError, OSError, ValueError) as e:
        rec["error"] = f"{type(e).__name__}: {e}"
        return rec
    rec["e2el"] = last - st
    rec["finish_reason"] = finish_reason
    if not done:
        rec["error"] = "stream ended without [DONE]"
    elif rec["chunks"] == 0:
        rec["error"] = "no text chunk received"
    elif rec["output_tokens"] is None:
        rec["error"] = "no usage chunk received"
    else:
        rec["success"] = True
    return rec


async def request_gaps(args, rng, n):
    """Yields before each request, sleeping the inter-arrival gap (vLLM's get_request)."""
    for i in range(n):
        yield i
        if math.isinf(args.request_rate):
            continue
        theta = 1.0 / (args.request_rate * args.burstiness)
        await asyncio.sleep(rng.gammavariate(args.burstiness, theta))


async def run_benchmark(args, reqs):
    headers = {"Content-Type": "application/json"}
    if args.api_key:
        headers["Authorization"] = f"Bearer {args.api_key}"
    in_flight = min(args.max_concurrency or len(reqs), len(reqs))
    limits = httpx.Limits(max_connections=max(in_flight, 1),
                          max_keepalive_connections=max(in_flight, 1))
    timeout = httpx.Timeout(args.timeout, connect=min(args.timeout, 60.0))
    async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as client:
        # A first request checks that the endpoint works before anything is timed.
        probe = await send_one(client, args, {"index": -1, "prompt": reqs[0]["prompt"],
                                              "input_len": reqs[0]["input_len"],
                                              "output_len": min(2, reqs[0]["output_len"])},
                               headers)
        if not probe["success"]:
            raise SystemExit(f"serve_bench: the test request failed: {probe['error']}")

        sem = asyncio.Semaphore(args.max_concurrency) if args.max_concurrency else None

        async def limited(req):
            if sem is None:
                return await send_one(client, args, req, headers)
            async with sem:
                return await send_one(client, args, req, headers)

        rng = random.Random(args.seed + 1)
        tasks = []
        t0 = time.perf_counter()
        async for i in request_gaps(args, rng, len(reqs)):
            tasks.append(asyncio.create_task(limited(reqs[i])))
        records = await asyncio.gather(*tasks)
        duration = time.perf_counter() - t0
    for r in records:
        r["start"] -= t0
        r["end"] -= t0
    return records, duration


def peak_concurrency(records):
    """Most requests in flight at one time (from their send to the end of their stream)."""
    events = sorted([(r["start"], 1) for r in records] + [(r["end"], -1) for r in records])
    peak = cur = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    return peak


def compute_metrics(args, records, duration):
    pcts = [float(p) for p in args.percentiles.split(",")]
    ok = [r for r in records if r["success"]]
    ttfts = [r["ttft"] for r in ok]
    e2els = [r["e2el"] for r in ok]
    itls = [g for r in ok for g in r["itl"]]
    tpots = [(r["e2el"] - r["ttft"]) / (r["output_tokens"] - 1) for r in ok
             if r["output_tokens"] > 1]
    total_in = sum(r["prompt_tokens"] or r["expected_input_len"] for r in ok)
    total_out = sum(r["output_tokens"] for r in ok)
    errors = {}
    for r in records:
        if not r["success"]:
            key = r["error"][:120]
            errors[key] = errors.get(key, 0) + 1
    m = {
        "completed": len(ok),
        "failed": len(records) - len(ok),
        "duration": duration,
        "total_input_tokens": total_in,
        "total_output_tokens": total_out,
        "request_throughput": len(ok) / duration if duration > 0 else 0.0,
        "output_throughput": total_out / duration if duration > 0 else 0.0,
        "total_token_throughput": (total_in + total_out) / duration if duration > 0 else 0.0,
        "peak_concurrent_requests": peak_concurrency(records),
        "errors": errors,
    }
    for name, vals in (("ttft", ttfts), ("tpot", tpots), ("itl", itls), ("e2el", e2els)):
        for stat, v in summarize(vals, pcts).items():
            m[f"{stat}_{name}_ms"] = v
    return m


def print_report(args, m):
    pcts = [float(p) for p in args.percentiles.split(",")]
    w = 50
    print("{s:{c}^{n}}".format(s=" Serving Benchmark Result ", n=w, c="="))
    rows = [
        ("Successful requests:", m["completed"]),
        ("Failed requests:", m["failed"]),
        ("Maximum request concurrency:", args.max_concurrency or "unlimited"),
        ("Peak concurrent requests:", m["peak_concurrent_requests"]),
        ("Request rate configured (RPS):", args.request_rate),
        ("Benchmark duration (s):", f"{m['duration']:.2f}"),
        ("Total input tokens:", m["total_input_tokens"]),
        ("Total generated tokens:", m["total_output_tokens"]),
        ("Request throughput (req/s):", f"{m['request_throughput']:.2f}"),
        ("Output token throughput (tok/s):", f"{m['output_throughput']:.2f}"),
        ("Total token throughput (tok/s):", f"{m['total_token_throughput']:.2f}"),
    ]
    for k, v in rows:
        print(f"{k:<40}{v!s:<10}")
    titles = {"ttft": "Time to First Token", "tpot": "Time per Output Token (excl. 1st token)",
              "itl": "Inter-token Latency", "e2el": "End-to-end Latency"}
    for name, title in titles.items():
        print("{s:{c}^{n}}".format(s=f" {title} ", n=w, c="-"))
        print(f"{'Mean ' + name.upper() + ' (ms):':<40}{m[f'mean_{name}_ms']:<10.2f}")
        print(f"{'Median ' + name.upper() + ' (ms):':<40}{m[f'median_{name}_ms']:<10.2f}")
        for p in pcts:
            print(f"{f'P{p:g} ' + name.upper() + ' (ms):':<40}{m[f'p{p:g}_{name}_ms']:<10.2f}")
    if m["errors"]:
        print("{s:{c}^{n}}".format(s=" Errors ", n=w, c="-"))
        for e, count in m["errors"].items():
            print(f"{count:>6}  {e}")
    print("=" * w)


def fetch_model_name(args):
    """The first model of GET /v1/models, for when --model is not given."""
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    r = httpx.get(args.base_url.rstrip("/") + "/v1/models", headers=headers, timeout=30,
                  trust_env=False)
    r.raise_for_status()
    return r.json()["data"][0]["id"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-url", default="http://127.0.0.1:8000",
                   help="server root (loopback only), e.g. http://127.0.0.1:8000")
    p.add_argument("--endpoint", default="/v1/completions")
    p.add_argument("--model", default=None, help="model name (default: first of /v1/models)")
    p.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY", ""),
                   help="bearer token (default: $OPENAI_API_KEY)")
    p.add_argument("--num-prompts", type=int, default=100)
    p.add_argument("--random-input-len", type=int, default=128)
    p.add_argument("--random-output-len", type=int, default=64)
    p.add_argument("--random-range-ratio", type=float, default=0.0,
                   help="lengths are drawn uniformly from [L*(1-r), L*(1+r)]")
    p.add_argument("--prompt-format", choices=["token-ids", "words"], default="token-ids")
    p.add_argument("--vocab-size", type=int, default=8192,
                   help="token ids are drawn from [--token-id-low, this) (token-ids format)")
    p.add_argument("--token-id-low", type=int, default=3,
                   help="lowest random token id (default 3 skips <unk>, <s>, </s>)")
    p.add_argument("--request-rate", type=float, default=float("inf"),
                   help="requests per second (Poisson arrivals); inf sends all at once")
    p.add_argument("--burstiness", type=float, default=1.0,
                   help="gamma shape of the arrival gaps; 1 is a Poisson process")
    p.add_argument("--max-concurrency", type=int, default=None,
                   help="most requests in flight at once (default: no limit)")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=600.0,
                   help="time limit of each request in seconds, connecting to [DONE]")
    p.add_argument("--percentiles", default="99", help="comma-separated, besides the median")
    p.add_argument("--result-file", default=None, help="write every figure and request as JSON")
    p.add_argument("--label", default="", help="free text stored in the result file")
    args = p.parse_args(argv)
    if args.num_prompts < 1:
        p.error("--num-prompts must be at least 1")
    if args.random_input_len < 1 or args.random_output_len < 1:
        p.error("--random-input-len and --random-output-len must be at least 1")
    if not 0.0 <= args.random_range_ratio < 1.0:
        p.error("--random-range-ratio must be in [0, 1)")
    if args.request_rate <= 0 or args.burstiness <= 0:
        p.error("--request-rate and --burstiness must be positive")
    if args.max_concurrency is not None and args.max_concurrency < 1:
        p.error("--max-concurrency must be at least 1")
    if not 0 <= args.token_id_low < args.vocab_size:
        p.error("need 0 <= --token-id-low < --vocab-size")
    if args.timeout <= 0:
        p.error("--timeout must be positive")
    u = urllib.parse.urlsplit(args.base_url)
    if u.scheme not in ("http", "https") or not u.hostname:
        p.error(f"--base-url {args.base_url!r} is not an http(s) URL")
    if not is_loopback(u.hostname):
        p.error(f"--base-url host {u.hostname!r} is not a loopback address; serve_bench only "
                "benchmarks a local server")
    args.url = args.base_url.rstrip("/") + args.endpoint
    return args


def main(argv=None):
    args = parse_args(argv)
    # Each in-flight request holds a socket: make room for --max-concurrency of them.
    want = (args.max_concurrency or args.num_prompts) + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(hard, want)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    if args.model is None:
        args.model = fetch_model_name(args)
    reqs = build_requests(args)
    print(f"serve_bench: {args.num_prompts} requests to {args.url} (model {args.model}), "
          f"input {args.random_input_len} / output {args.random_output_len} tokens "
          f"(range ratio {args.random_range_ratio}, {args.prompt_format}), rate "
          f"{args.request_rate}, max concurrency {args.max_concurrency or 'unlimited'}",
          file=sys.stderr, flush=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    records, duration = asyncio.run(run_benchmark(args, reqs))
    m = compute_metrics(args, records, duration)
    print_report(args, m)
    if args.result_file:
        config = {k: v for k, v in vars(args).items() if k not in ("api_key",)}
        if math.isinf(config["request_rate"]):
            config["request_rate"] = "inf"
        per_request = []
        for r in records:
            per_request.append({
                "index": r["index"], "success": r["success"], "error": r["error"],
                "start_s": r["start"], "end_s": r["end"],
                "expected_input_len": r["expected_input_len"],
                "expected_output_len": r["expected_output_len"],
                "prompt_tokens": r["prompt_tokens"], "output_tokens": r["output_tokens"],
                "ttft_ms": r["ttft"] * 1000.0, "e2el_ms": r["e2el"] * 1000.0,
                "tpot_ms": ((r["e2el"] - r["ttft"]) * 1000.0 / (r["output_tokens"] - 1)
                            if r["success"] and r["output_tokens"] > 1 else None),
                "itl_ms": [g * 1000.0 for g in r["itl"]], "chunks": r["chunks"],
                "finish_reason": r.get("finish_reason"),
            })
        out = {"tool": "longview tools/bench/serve_bench.py", "date": started.isoformat(),
               "config": config, **m, "requests": per_request}
        os.makedirs(os.path.dirname(os.path.abspath(args.result_file)), exist_ok=True)
        with open(args.result_file, "w") as f:
            json.dump(out, f, indent=1)
        print(f"serve_bench: wrote {args.result_file}", file=sys.stderr)
    return 0 if m["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
