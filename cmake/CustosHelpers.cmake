# Helpers shared by every directory, in the spirit of LevelDB's
# leveldb_test() / leveldb_benchmark().

# Warnings for project code only; generated and third-party code is exempt.
add_library(custos_warnings INTERFACE)
target_compile_options(custos_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Werror -Wshadow -Wnon-virtual-dtor
  -Wimplicit-fallthrough)

# custos_test(foo_test.cc LIBS lib...) builds foo_test from foo_test.cc,
# links GoogleTest's main and the given libraries, and registers it with
# ctest under the name foo_test.
function(custos_test source)
  cmake_parse_arguments(ARG "" "" "LIBS" ${ARGN})
  get_filename_component(name "${source}" NAME_WE)
  add_executable(${name} "${source}")
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} custos_warnings
                        GTest::gtest GTest::gmock GTest::gtest_main)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT 600)
endfunction()

# custos_bench(foo_bench.cc LIBS lib...) builds a Google Benchmark binary
# named foo_bench. Benchmarks are built with everything else but never run
# by ctest: speed is measured on purpose, not as a side effect of testing.
function(custos_bench source)
  cmake_parse_arguments(ARG "" "" "LIBS" ${ARGN})
  get_filename_component(name "${source}" NAME_WE)
  add_executable(${name} "${source}")
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} custos_warnings
                        benchmark::benchmark benchmark::benchmark_main)
endfunction()
