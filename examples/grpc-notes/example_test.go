package main

import (
	"context"
	"fmt"
	"log"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"
)

// A client creates a note with a tenant API key in the call's
// "authorization" metadata (README.md shows these lines). It needs a
// running server, so it is compiled but not run: the tests call the
// service the same way.
func Example_client() {
	key := "bk_..."                    // printed by 'grpc-notes tenant acme'
	creds := insecure.NewCredentials() // on loopback only: send keys over TLS (credentials.NewTLS)
	conn, err := grpc.NewClient("127.0.0.1:8093", grpc.WithTransportCredentials(creds))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+key)
	note := &structpb.Struct{}
	err = conn.Invoke(ctx, "/notes.v1.Notes/Create",
		&structpb.Struct{Fields: map[string]*structpb.Value{"text": structpb.NewStringValue("hello")}}, note)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(note.Fields["id"].GetStringValue())
}
