package kubeenv

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
)

// RolloutGVR is Argo Rollouts' Rollout resource.
var RolloutGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}

// WaitRollout polls a Rollout's status every interval until done says so, and returns the last status
// seen with the error when timeout passes first.
func WaitRollout(dyn dynamic.Interface, namespace, name string, interval, timeout time.Duration,
	done func(status map[string]any) bool) (map[string]any, error) {
	var status map[string]any
	err := wait.PollUntilContextTimeout(context.Background(), interval, timeout, true,
		func(ctx context.Context) (bool, error) {
			got, err := dyn.Resource(RolloutGVR).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			status, _, _ = unstructured.NestedMap(got.Object, "status")
			return done(status), nil
		})
	return status, err
}

// Field is the value at path in an unstructured map, as text ("" when absent).
func Field(m map[string]any, path ...string) string {
	v, _, _ := unstructured.NestedFieldNoCopy(m, path...)
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// RolloutHealthy says whether a Rollout status is Healthy with all replicas available on its current
// revision, which is also the stable one.
func RolloutHealthy(status map[string]any, replicas int) bool {
	return Field(status, "phase") == "Healthy" && Field(status, "availableReplicas") == fmt.Sprint(replicas) &&
		Field(status, "stableRS") != "" && Field(status, "stableRS") == Field(status, "currentPodHash")
}
