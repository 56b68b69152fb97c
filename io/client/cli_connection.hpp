// The connection options loyaltyctl and loyalty-loadgen share: the API key
// and TLS. Header-only, for the two command lines (both link CLI11).
#pragma once

#include "io/client/client.hpp"

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <string>

namespace loyalty::io {

struct connection_options {
  std::string key;       // "" = $LOYALTY_KEY, else none
  tls_options tls;
  bool tls_insecure = false;

  void add_to(CLI::App& app) {
    app.add_option("--key", key, "API key sent in hello (default: $LOYALTY_KEY; none if unset)");
    app.add_flag("--tls", tls.enabled,
                 "connect over TLS (the engine has tls_cert / tls_key set); the server's certificate is "
                 "checked against the system's CAs unless --tls-ca is given");
    auto* ca = app.add_option("--tls-ca", tls.ca_file,
                              "PEM file of the CA (or the self-signed certificate) the server's certificate "
                              "must chain to; implies --tls")
                 ->check(CLI::ExistingFile);
    app.add_flag("--tls-insecure", tls_insecure,
                 "TLS WITHOUT checking the server's certificate: anyone on the path can read and change the "
                 "traffic; for testing with self-signed certificates only; implies --tls")
      ->excludes(ca);
  }

  // After parsing: the implied settings.
  void resolve() {
    if (!tls.ca_file.empty() || tls_insecure)
      tls.enabled = true;
    tls.verify = !tls_insecure;
    if (key.empty())
      if (const char* env = std::getenv("LOYALTY_KEY"))
        key = env;
  }
};

} // namespace loyalty::io
