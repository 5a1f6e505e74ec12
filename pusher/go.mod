module github.com/pushgo/gateway/pusher

go 1.26.8

require github.com/pushgo/gateway/schemas v0.0.0

replace github.com/pushgo/gateway/schemas => ../schemas
