custos_test(access_matrix_test.cc LIBS custos_storage)
custos_test(engine_test.cc LIBS custos_storage)
