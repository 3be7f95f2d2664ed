package server

import "fmt"

// Validate returns an error naming m unless it is a pod mode: disabled,
// insecure or verified (NewHandler also reads "" as disabled). NewHandler
// and the configuration's pods key call it: the one list of pod modes.
func (m PodMode) Validate() error {
	switch m {
	case PodsDisabled, PodsInsecure, PodsVerified:
		return nil
	}
	return fmt.Errorf("pods %q: want disabled, insecure or verified", m)
}

// ValidateAnswerOrder returns an error naming policy unless it is an
// answer order: off, round_robin or random (NewHandler also reads "" as its
// default). The configuration's answer order keys call it; the list is
// orderPolicy's.
func ValidateAnswerOrder(policy string) error {
	if policy == "" {
		return fmt.Errorf("answer order %q: want off, round_robin or random", policy)
	}
	_, err := orderPolicy(policy)
	return err
}
