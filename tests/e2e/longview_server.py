"""Starts the real `longview serve` binary on a free loopback port for end-to-end tests.

    s = LongviewServer(binary, model_dir, "--api-key", KEY)   # blocks until it listens
    ... http://127.0.0.1:{s.port}/v1 ...
    assert s.stop() == 0, "".join(s.log)
"""
import re
import subprocess
import threading
import time


class LongviewServer:
    def __init__(self, binary, model_dir, *extra, timeout=60):
        self.proc = subprocess.Popen(
            [binary, "serve", "--model", model_dir, "--host", "127.0.0.1", "--port", "0",
             *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log = []
        self.port = None
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r"HTTP on http://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("server did not start:\n" + "".join(self.log))
        # Keep draining stderr so the server never blocks on a full pipe.
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()

    def stop(self):
        """SIGTERM, then the exit status (killed after 30 s)."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode
