package bus

import "github.com/ThreeDotsLabs/watermill/message"

// handlerStack is the stack a handler's goroutine is grown to before the
// handler runs: enough for the services' handlers, whose deepest paths
// (TMA decoding, TSDB appends, producing) then never grow it again.
const handlerStack = 16 << 10

// growFrame is the frame growStack takes: more than is left of any
// smaller stack with the router's frames on it, so the stack is grown at
// once to handlerStack (the runtime doubles it until the frame fits), and
// less than handlerStack, so a stack that size is left alone.
const growFrame = handlerStack/2 - 1<<10

// grownStack is the router's outermost middleware: it grows the stack of
// the goroutine Watermill starts for the message before anything else
// runs on it.
func grownStack(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		growStack()
		return h(msg)
	}
}

// growStack grows the calling goroutine's stack to handlerStack in one
// step. Watermill runs every message's handler on a new goroutine, which
// starts with a small stack; left alone, the stack grows deep inside the
// handler, where copying it means adjusting many frames, for every
// message. Here few frames are on it; the cost is zeroing growFrame.
//
//go:noinline
func growStack() byte {
	var frame [growFrame]byte
	return touch(&frame)
}

//go:noinline
func touch(b *[growFrame]byte) byte { return b[len(b)-1] }
