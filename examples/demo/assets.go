// Package demoassets embeds the files of the `apiguard demo` example: the
// gateway config that puts the sample shop behind apiguard, and the shop's
// OpenAPI description. internal/demo serves them; they stay readable here as
// a starting point for real deployments.
package demoassets

import _ "embed"

// ConfigName is the name config errors are reported against.
const ConfigName = "examples/demo/apiguard.yaml"

// Config is apiguard.yaml. It references ${DEMO_SHOP_URL}, ${DEMO_LISTEN},
// ${DEMO_ADMIN_LISTEN}, ${DEMO_DATA_DIR} and ${DEMO_ADMIN_TOKEN}, which the
// demo supplies when it parses the file. Do not modify the slice.
//
//go:embed apiguard.yaml
var Config []byte

// OpenAPI is openapi.yaml, the OpenAPI 3.1 description of the shop. Like any
// real spec it misses what the developers forgot to declare (the shop's
// /api/debug/vars). Do not modify the slice.
//
//go:embed openapi.yaml
var OpenAPI []byte
