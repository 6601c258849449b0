# The bare Cap'n Proto baseline of custos_load --echo (bench/README.md): a
# call that carries bytes and returns them, with no engine behind it.

@0xa31c9c3697f4273c;

$import "/capnp/c++.capnp".namespace("custos::bench::echo");

interface Echo {
  # Returns `data` unchanged.
  echo @0 (data :Data) -> (data :Data);
}
