# Shared by the scripts here (sourced, not run).

# Prints a TCP port that is free right now on every address. It is picked at random below the kernel's
# ephemeral range, so outgoing connections (which take ephemeral source ports) cannot grab it between the
# check and the server's bind; callers still retry on the rare collision with another test.
free_port() {
  python3 - <<'PY'
import random, socket
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except OSError:
    low = 32768
for _ in range(500):
    port = random.randint(10000, max(10001, low - 1))
    s = socket.socket()
    try:
        s.bind(("0.0.0.0", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    raise SystemExit("no free port found")
PY
}
