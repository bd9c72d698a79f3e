"""The loopback S3 server (moto) of tests/object_storage.rs.

Binds a port the kernel picks and prints it once it listens, then serves until its stdin closes.
Picking a free port first and handing it to `moto.server` raced: a test that polled the port
could reach another test's server, or connect to itself, before its own server had bound it.
"""
import sys

from moto.server import ThreadedMotoServer

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
