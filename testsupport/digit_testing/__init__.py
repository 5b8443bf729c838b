"""What the test suites and the benchmarks share (installed with `make test`, never in an image).

- `tooling`: the one rule for system tools the tests drive for real (skip outside CI, fail in it);
- `processes`: free ports, the API as a subprocess ready on /readyz, waiting and stopping;
- `releases`: release folders as training/ publishes them, and a git world (a bare remote, a clone);
- `github_server`: a local GitHub Releases API that keeps to the documented behaviour;
- `hostile_server`: one that misbehaves on purpose (trickles, stalls, lies about sizes).
"""
