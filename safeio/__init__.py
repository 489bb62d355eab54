"""Safe file I/O shared by every package: guarded atomic outputs (a target xfeed did not write is
never replaced without --force; temporary siblings, a swap that is safe at every instant, stale
siblings of killed runs cleaned up), signal deferral, and input-file checks (no FIFOs, no
directories where a file is expected)."""
