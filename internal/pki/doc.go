// Package pki is the controller's certificate authority: it creates and loads the CA, issues certificates
// that carry an Ebbflow identity, and makes and checks join tokens and bearer tokens.
package pki
