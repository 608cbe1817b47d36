"""Timing of the PyTorch peers of the kernel benchmarks, the same method as the C++ side
(tools/bench/cuda_timing.h): warm-up calls, then each call between two CUDA events, inputs
rotated by the caller through the iteration number.

    times, out = time_cuda(lambda i: step(i), iters=100, warmup=10)   # sorted ms, last output
"""
import torch


def time_cuda(step, iters, warmup):
    for i in range(max(warmup, 1)):
        step(i)
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    times, out = [], None
    for i in range(iters):
        start.record()
        out = step(i)
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times, out
