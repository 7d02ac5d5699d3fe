// Package fuzz holds the API's fuzz targets. They live apart from package
// api so that a fuzzing run instruments only the API and what it imports,
// not the embedded Temporal server the API's end-to-end tests link in.
package fuzz
