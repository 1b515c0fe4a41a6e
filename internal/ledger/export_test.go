package ledger

// SetVerifyBatch makes Verify read n entries at a time until the returned
// function is called, so that a small log spans several pages.
func SetVerifyBatch(n int64) (restore func()) {
	old := verifyBatch
	verifyBatch = n
	return func() { verifyBatch = old }
}
