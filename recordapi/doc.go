// Package recordapi is Bulkhead's JSON record API as a net/http handler
// set a team mounts in its own mux, behind its own ingress gate: the same
// routes, answers and errors as `bulkhead serve`'s data plane, which is
// built from it.
//
//	GET    /v1/collections                     the tenant's collections
//	GET    /v1/collections/{c}/records         a page: ?limit=&cursor=&<field>=eq.<value>
//	POST   /v1/collections/{c}/records         create with an id the store makes
//	GET    /v1/collections/{c}/records/{id}    read (ETag)
//	PUT    /v1/collections/{c}/records/{id}    create or replace (If-Match)
//	DELETE /v1/collections/{c}/records/{id}    delete (If-Match)
//
// Every handler acts on the tenant in the request's context
// (tenant.FromContext) and on nothing else: the gate in front puts it
// there from the credential, and the store.Router scopes each transaction
// to it. Another tenant's record is answered with the same bytes as a
// missing one.
//
// Mounting the API behind an ingress gate takes one line:
//
//	api, err := recordapi.New(recordapi.Options{Router: router})
//	...
//	mux := http.NewServeMux()
//	api.Mount(mux, gate.Data)
//
// A team with a route table of its own takes API.Routes and answers the
// handlers' errors with API.Error. Errors are problem+json documents
// (package problem) with stable codes: Problem maps the errors of package
// store to them.
package recordapi
