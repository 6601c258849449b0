add_library(custos_storage
  access.cc
  codec.cc
  engine.cc
  history.cc
  key_cache.cc
  keystore.cc
  leveldb_util.cc
  subject_report.cc
)
target_include_directories(custos_storage PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(custos_storage
  PUBLIC custos_base custos_crypto custos_retention custos_schema leveldb::leveldb
  PRIVATE custos_warnings)
