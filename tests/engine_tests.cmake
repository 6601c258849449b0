custos_test(access_matrix_test.cc LIBS custos_storage)
custos_test(engine_test.cc LIBS custos_storage)
custos_test(encryption_at_rest_test.cc LIBS custos_storage)
custos_test(shred_test.cc LIBS custos_storage)
