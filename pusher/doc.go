// Package pusher delivers operations to devices: it expands each operation
// of PUSHGO_OPS into one delivery task per subscribed device and sends the
// tasks to APNs and FCM. See the sender subpackage for the providers.
package pusher
