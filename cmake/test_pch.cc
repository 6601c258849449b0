// The translation unit that custos_test_pch compiles so that its
// precompiled header (cmake/CustosHelpers.cmake) exists for the tests to
// reuse; it defines nothing.
