// Command example takes a lock on lockd with go-redis, uses its fencing
// token, and releases it.
//
//	go run ./examples/go -addr 127.0.0.1:6379
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:6379", "any lockd node")
	flag.Parse()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: *addr})
	defer rdb.Close()

	owner := uuid.NewString() // one per process
	token, err := rdb.Do(ctx, "LOCK", "orders-42", owner, "PX", 30000).Int64()
	if errors.Is(err, redis.Nil) {
		fmt.Println("held by", rdb.Do(ctx, "OWNER", "orders-42").Val())
		return
	}
	if err != nil {
		log.Fatal(err) // -TRYAGAIN: safe to retry with the same owner
	}
	fmt.Println("locked orders-42 with fencing token", token)
	// ... write to the protected resource, passing token along ...
	released, err := rdb.Do(ctx, "UNLOCK", "orders-42", owner).Int64()
	fmt.Println("released:", released == 1, err)
}
