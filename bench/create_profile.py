#!/usr/bin/env python3
"""Inclusive shares of a create's CPU time, by subsystem, from `perf script`.

Reads the text of `perf script -F tid,ip,sym,dso` over a `perf record
--call-graph dwarf` of concurrency_bench (see bench/RESULTS.md, "Group commit
and create cost (issue 8)"), keeps the samples whose call chain passes
through ROOT (the benchmark's timed loop, so the setup's creates are left
out), and prints, for each category below, the share of those samples in
which the category appears anywhere in the chain. Shares are inclusive and
overlap (a getrandom under Seal under History::Stage counts for all three).

The categories name engine functions as of the commit measured; after a
refactor, adjust the patterns below, not the method.

Usage: create_profile.py PERF_SCRIPT_TXT [ROOT]
"""

import re
import sys

ROOT = "CreateLoop"

MALLOC = ("malloc", "_int_malloc", "free", "cfree", "_int_free", "calloc",
          "__libc_calloc", "realloc", "operator new", "operator delete",
          "malloc_consolidate")
GUARDED_SYSCALLS = ("mmap", "mprotect", "mlock", "munlock", "munmap", "madvise")
CAPNP_FUNCS = ("custos::codec::Encode", "capnp_value::ToBytes",
               "EncodeStoredEvent", "EncodeHead")


def frame_is(frame, *names):
    sym, _ = frame
    return any(sym == n or sym.startswith(n + "@") for n in names)


def has(chain, sub):
    return any(sub in sym for sym, _ in chain)


def below(chain, parent, pred):
    """Some frame deeper than (called from) a `parent` frame satisfies pred."""
    for i, (sym, _) in enumerate(chain):
        if parent in sym:
            return any(pred(f) for f in chain[:i])
    return False


def callee_in_dso(chain, parent, dso):
    """A `parent` frame calls directly into `dso`."""
    return any(parent in sym and i > 0 and dso in chain[i - 1][1]
               for i, (sym, _) in enumerate(chain))


def syscall(chain, name):
    """The system call `name`, by its libc wrapper or its kernel entry (in
    this VM some samples in a system call show only the wrapper)."""
    names = {name, "__" + name, "__GI___" + name, "__GI_" + name,
             "__x64_sys_" + name}
    return any(sym in names or sym.split("@")[0] in names
               for sym, _ in chain)


def capnp(frame):
    sym, dso = frame
    return ("libcapnp" in dso or "libkj" in dso
            or any(f in sym for f in CAPNP_FUNCS))


CATEGORIES = [
    ("Engine::CreateRecord", lambda c: has(c, "custos::Engine::CreateRecord")),
    ("LevelDB DB::Write, records database (called by WriteWithEvents)",
     lambda c: callee_in_dso(c, "WriteWithEvents", "libleveldb")),
    ("  of which memtable insert (WriteBatch::Iterate)",
     lambda c: below(c, "WriteWithEvents",
                     lambda f: "WriteBatch::Iterate" in f[0])),
    ("  of which log append, write(2)",
     lambda c: below(c, "WriteWithEvents",
                     lambda f: "__libc_write" in f[0] or "ksys_write" in f[0])),
    ("History::Stage (the create event)", lambda c: has(c, "History::Stage")),
    ("  of which Seal of the event's subject part",
     lambda c: below(c, "History::Stage", lambda f: "crypto::Seal" in f[0])),
    ("  of which keyed BLAKE2b (event digest, chain link, index tag)",
     lambda c: below(c, "History::Stage",
                     lambda f: "Tagged" in f[0] or "KeyedHash" in f[0]
                     or "ChainLink" in f[0])),
    ("  of which Cap'n Proto (build, canonicalize, flatten)",
     lambda c: below(c, "History::Stage", capnp)),
    ("crypto::Seal, all (record part, event part, identifier)",
     lambda c: has(c, "custos::crypto::Seal")),
    ("  of which getrandom (one 24-byte nonce per Seal)",
     lambda c: below(c, "custos::crypto::Seal",
                     lambda f: "getrandom" in f[0])),
    ("  of which XChaCha20-Poly1305",
     lambda c: has(c, "crypto_aead_xchacha20poly1305_ietf_encrypt")),
    ("FindOrCreateSubject", lambda c: has(c, "FindOrCreateSubject")),
    ("  of which LevelDB Get of the blind index",
     lambda c: callee_in_dso(c, "FindOrCreateSubject", "libleveldb")),
    ("  of which BlindIndex (keyed BLAKE2b)",
     lambda c: has(c, "crypto::BlindIndex")),
    ("  of which Keystore::PutKey (wrap + keystore Put)",
     lambda c: has(c, "Keystore::PutKey")),
    ("    of which keystore DB::Put",
     lambda c: callee_in_dso(c, "Keystore::PutKey", "libleveldb")),
    ("  of which SecretKey::Generate (key in guarded memory)",
     lambda c: has(c, "SecretKey::Generate")),
    ("  of which KeyCache::Put (may evict and free a key)",
     lambda c: has(c, "KeyCache::Put")),
    ("~SecretKey (a key evicted from the cache, freed)",
     lambda c: has(c, "SecretKey::~SecretKey")),
    # libsodium tail-calls mprotect and munmap, so sodium_malloc and
    # sodium_free are often missing from the chains: count the system calls.
    ("guarded memory system calls (mmap, mprotect, mlock, munmap, ...)",
     lambda c: any(syscall(c, n) for n in GUARDED_SYSCALLS)),
    ("PutRecord (record encode, deadline)", lambda c: has(c, "PutRecord")),
    ("Cap'n Proto encoding, anywhere", lambda c: any(capnp(f) for f in c)),
    ("Decoding (codec::Decode*, capnp readers) anywhere",
     lambda c: has(c, "Decode")),
    ("RequireRole (principal lookup)", lambda c: has(c, "RequireRole")),
    ("Input checks (CheckFields, CheckLength, CheckId)",
     lambda c: has(c, "CheckFields") or has(c, "CheckLength")
     or has(c, "CheckId")),
    ("malloc/free/new/delete, anywhere",
     lambda c: any(frame_is(f, *MALLOC) for f in c)),
    ("kernel, anywhere", lambda c: any("kernel" in d for _, d in c)),
    ("system calls (libc wrapper and kernel), anywhere:", None),
    ("  write(2)", lambda c: syscall(c, "libc_write") or has(c, "ksys_write")),
    ("  getrandom(2)", lambda c: syscall(c, "getrandom")),
    ("  mprotect(2)", lambda c: syscall(c, "mprotect")),
    ("  mmap(2)", lambda c: syscall(c, "mmap")),
    ("  munmap(2)", lambda c: syscall(c, "munmap")),
    ("  mlock(2) / munlock(2)",
     lambda c: syscall(c, "mlock") or syscall(c, "munlock")),
    ("  madvise(2)", lambda c: syscall(c, "madvise")),
    ("page faults", lambda c: has(c, "exc_page_fault")),
]


def chains(path):
    frame_re = re.compile(r"\s*[0-9a-f]+ (.*) \((.*)\)$")
    with open(path, errors="replace") as f:
        for block in f.read().split("\n\n"):
            chain = []
            for line in block.strip("\n").split("\n")[1:]:
                m = frame_re.match(line)
                if m:
                    chain.append((m.group(1), m.group(2)))
            yield chain


def main():
    path = sys.argv[1]
    root = sys.argv[2] if len(sys.argv) > 2 else ROOT
    samples = [c for c in chains(path) if has(c, root)]
    if not samples:
        sys.exit("no sample passes through " + root)
    print(f"{len(samples)} samples under {root}")
    for label, pred in CATEGORIES:
        if pred is None:
            print(f"        {label}")
            continue
        n = sum(1 for c in samples if pred(c))
        print(f"{100.0 * n / len(samples):5.1f}%  {label}")


if __name__ == "__main__":
    main()
