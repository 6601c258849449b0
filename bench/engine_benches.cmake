# The storage engine benchmarks; included by bench/CMakeLists.txt, so paths
# are relative to bench/.
custos_bench(engine_bench.cc LIBS custos_storage)
custos_bench(sweep_bench.cc LIBS custos_storage)
