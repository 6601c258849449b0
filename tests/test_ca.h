// Certificates for TLS tests, made in-process with OpenSSL 3: a CA, and a
// server certificate for the DNS name `localhost` signed by it (kj-tls
// verifies names, not IP addresses). Key and certificate in PEM too, for a
// server given them in memory or in files.

#ifndef CUSTOS_TESTS_TEST_CA_H_
#define CUSTOS_TESTS_TEST_CA_H_

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <string>

namespace custos::testing {

// A key and its certificate (owned), with their PEM texts.
struct KeyAndCert {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  std::string key_pem;
  std::string cert_pem;
  KeyAndCert() = default;
  KeyAndCert(const KeyAndCert&) = delete;
  KeyAndCert& operator=(const KeyAndCert&) = delete;
  ~KeyAndCert() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

inline std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  std::string text(data, static_cast<size_t>(size));
  BIO_free(bio);
  return text;
}

inline void AddExtension(X509* cert, X509V3_CTX* ctx, int nid,
                         const char* value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value);
  ASSERT_NE(ext, nullptr) << value;
  ASSERT_EQ(X509_add_ext(cert, ext, -1), 1);
  X509_EXTENSION_free(ext);
}

// A CA (issuer null) or a server certificate for `localhost` signed by
// `issuer`.
inline void MakeCert(KeyAndCert& out, const char* common_name,
                     const KeyAndCert* issuer, long serial) {
  out.key = EVP_EC_gen("P-256");
  ASSERT_NE(out.key, nullptr);
  out.cert = X509_new();
  X509* x = out.cert;
  ASSERT_EQ(X509_set_version(x, 2), 1);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  ASSERT_EQ(X509_set_pubkey(x, out.key), 1);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(
      name, "CN", MBSTRING_ASC,
      reinterpret_cast<const unsigned char*>(common_name), -1, -1, 0);
  X509_set_issuer_name(
      x, issuer != nullptr ? X509_get_subject_name(issuer->cert) : name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer->cert : x, x, nullptr,
                 nullptr, 0);
  AddExtension(x, &ctx, NID_subject_key_identifier, "hash");
  if (issuer == nullptr) {
    AddExtension(x, &ctx, NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExtension(x, &ctx, NID_basic_constraints, "critical,CA:FALSE");
    AddExtension(x, &ctx, NID_authority_key_identifier, "keyid:always");
    AddExtension(x, &ctx, NID_key_usage, "critical,digitalSignature");
    AddExtension(x, &ctx, NID_ext_key_usage, "serverAuth");
    AddExtension(x, &ctx, NID_subject_alt_name, "DNS:localhost");
  }
  ASSERT_GT(
      X509_sign(x, issuer != nullptr ? issuer->key : out.key, EVP_sha256()), 0);
  BIO* cert_bio = BIO_new(BIO_s_mem());
  ASSERT_EQ(PEM_write_bio_X509(cert_bio, x), 1);
  out.cert_pem = BioText(cert_bio);
  BIO* key_bio = BIO_new(BIO_s_mem());
  ASSERT_EQ(PEM_write_bio_PrivateKey(key_bio, out.key, nullptr, nullptr, 0,
                                     nullptr, nullptr),
            1);
  out.key_pem = BioText(key_bio);
}

}  // namespace custos::testing

#endif  // CUSTOS_TESTS_TEST_CA_H_
