# Helpers shared by every directory, in the spirit of LevelDB's
# leveldb_test() / leveldb_benchmark().

# Warnings for project code only; generated and third-party code is exempt.
add_library(custos_warnings INTERFACE)
target_compile_options(custos_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Werror -Wshadow -Wnon-virtual-dtor
  -Wimplicit-fallthrough)

# Build time (.ci/run compiles everything three times, on two cores):
#
# custos_unity(target batch_size) compiles the target's sources in unity
# sources of batch_size units each, when CUSTOS_UNITY_BUILD is on (the
# default): sources that share most of their headers and instantiate the
# same templates (Cap'n Proto's, CLI11's, nlohmann/json's) compile them
# once a batch instead of once a unit. A unit that needs a header must
# still include it: -DCUSTOS_UNITY_BUILD=OFF builds each unit alone.
function(custos_unity target batch_size)
  if(CUSTOS_UNITY_BUILD)
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON
                          UNITY_BUILD_BATCH_SIZE ${batch_size})
  endif()
endfunction()

# In Release, a test's own code is compiled at -O1: the code under test is
# the libraries', which keep -O3 as shipped, and -O3 on the tests' bodies
# (GoogleTest's macros, the fixtures) took twice the compile time of -O1
# for nothing the tests check (docs/decisions.md, "Build time"). In the
# sanitizer builds it is compiled at -O0 (the libraries keep -O1 there):
# the tests' bodies are instrumented either way, and optimizing them is
# most of those builds' time for little of their tests' ("The sanitizer
# builds' tests at -O0").
if(CUSTOS_SANITIZE OR CUSTOS_TSAN)
  set(CUSTOS_TEST_COMPILE_OPTIONS -O0)
else()
  set(CUSTOS_TEST_COMPILE_OPTIONS $<$<CONFIG:Release>:-O1>)
endif()

# GoogleTest's and GoogleMock's headers and the standard headers most tests
# include, parsed once for all tests (about 2 s of every test's compile;
# the three builds of .ci/run compile 69 tests each): a precompiled header
# made by custos_test_pch, reused by each test. Only headers whose meaning
# no target's definitions change belong here: the project's own headers,
# and Boost's and LevelDB's (which targets configure with definitions),
# stay out. GCC checks that a reuse is valid (-Winvalid-pch, an error
# here), so a mismatch fails the build instead of compiling slowly.
add_library(custos_test_pch OBJECT "${CMAKE_CURRENT_LIST_DIR}/test_pch.cc")
target_link_libraries(custos_test_pch PRIVATE custos_warnings
                      GTest::gtest GTest::gmock)
target_compile_options(custos_test_pch PRIVATE ${CUSTOS_TEST_COMPILE_OPTIONS})
target_precompile_headers(custos_test_pch PRIVATE
  <gmock/gmock.h> <gtest/gtest.h>
  <algorithm> <atomic> <chrono> <cstdint> <filesystem> <fstream>
  <functional> <map> <memory> <optional> <set> <string> <thread>
  <utility> <vector>)

# custos_test(foo_test.cc LIBS lib...) builds foo_test from foo_test.cc,
# links GoogleTest's main and the given libraries, and registers it with
# ctest under the name foo_test.
function(custos_test source)
  cmake_parse_arguments(ARG "" "" "LIBS" ${ARGN})
  get_filename_component(name "${source}" NAME_WE)
  add_executable(${name} "${source}")
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} custos_warnings
                        GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_options(${name} PRIVATE ${CUSTOS_TEST_COMPILE_OPTIONS})
  target_precompile_headers(${name} REUSE_FROM custos_test_pch)
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
