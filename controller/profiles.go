package controller

import (
	"context"
	"errors"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/profile"
	"github.com/ebbflow/ebbflow/store"
)

type profileService struct{ *Server }

// checkSpec validates a profile at the boundary: errors reject it, warnings come back.
func checkSpec(name string, spec *ebbflowv1.ProfileSpec) ([]*ebbflowv1.ValidationIssue, error) {
	if spec == nil {
		return nil, invalid([]*ebbflowv1.ValidationIssue{{Field: "spec", Rule: "required", Message: "must be set"}})
	}
	res := profile.Validate(name, spec)
	if len(res.Errors) > 0 {
		return nil, invalid(res.Errors)
	}
	return res.Warnings, nil
}

func (s *profileService) CreateProfile(ctx context.Context, req *connect.Request[ebbflowv1.CreateProfileRequest]) (*connect.Response[ebbflowv1.CreateProfileResponse], error) {
	m := req.Msg
	warnings, err := checkSpec(m.GetName(), m.GetSpec())
	if err != nil {
		return nil, err
	}
	out, err := s.store.Apply(ctx, &storev1.Command{Actor: actorOf(ctx), Body: &storev1.Command_CreateProfile{
		CreateProfile: &storev1.CreateProfile{Name: m.GetName(), Spec: m.GetSpec()},
	}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ebbflowv1.CreateProfileResponse{Profile: out.(*ebbflowv1.Profile), Warnings: warnings}), nil
}

func (s *profileService) UpdateProfile(ctx context.Context, req *connect.Request[ebbflowv1.UpdateProfileRequest]) (*connect.Response[ebbflowv1.UpdateProfileResponse], error) {
	m := req.Msg
	warnings, err := checkSpec(m.GetName(), m.GetSpec())
	if err != nil {
		return nil, err
	}
	// A spec equal to the latest revision's writes nothing. The comparison holds at the write:
	// the update is conditional on the revision compared against, and when another update lands
	// in between (and the caller named no revision) the comparison is made again.
	for attempt := 1; ; attempt++ {
		var cur *ebbflowv1.Profile
		if err := s.store.View(ctx, store.Linearizable, func(tx *store.Tx) error {
			var err error
			cur, err = tx.Profile(m.GetName(), 0)
			return err
		}); err != nil {
			return nil, err
		}
		want := m.GetExpectedRevision()
		if (want == 0 || want == cur.GetRevision()) && proto.Equal(cur.GetSpec(), m.GetSpec()) {
			return connect.NewResponse(&ebbflowv1.UpdateProfileResponse{Profile: cur, Warnings: warnings, Unchanged: true}), nil
		}
		if want == 0 {
			want = cur.GetRevision()
		}
		out, err := s.store.Apply(ctx, &storev1.Command{Actor: actorOf(ctx), Body: &storev1.Command_UpdateProfile{
			UpdateProfile: &storev1.UpdateProfile{Name: m.GetName(), Spec: m.GetSpec(), ExpectedRevision: want},
		}})
		if errors.Is(err, store.ErrConflict) && m.GetExpectedRevision() == 0 && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, err
		}
		return connect.NewResponse(&ebbflowv1.UpdateProfileResponse{Profile: out.(*ebbflowv1.Profile), Warnings: warnings}), nil
	}
}

func (s *profileService) DeleteProfile(ctx context.Context, req *connect.Request[ebbflowv1.DeleteProfileRequest]) (*connect.Response[ebbflowv1.DeleteProfileResponse], error) {
	m := req.Msg
	var rev uint64
	if err := s.store.View(ctx, store.Linearizable, func(tx *store.Tx) error {
		p, err := tx.Profile(m.GetName(), 0)
		if err == nil {
			rev = p.GetRevision()
		}
		return err
	}); err != nil {
		return nil, err
	}
	if m.GetExpectedRevision() != 0 {
		rev = m.GetExpectedRevision()
	}
	_, err := s.store.Apply(ctx, &storev1.Command{Actor: actorOf(ctx), Body: &storev1.Command_DeleteProfile{
		DeleteProfile: &storev1.DeleteProfile{Name: m.GetName(), ExpectedRevision: rev},
	}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ebbflowv1.DeleteProfileResponse{Revision: rev}), nil
}

func (s *profileService) GetProfile(ctx context.Context, req *connect.Request[ebbflowv1.GetProfileRequest]) (*connect.Response[ebbflowv1.GetProfileResponse], error) {
	m := req.Msg
	return view(ctx, s.Server, m.GetRead(), func(tx *store.Tx) (*ebbflowv1.GetProfileResponse, error) {
		p, err := tx.Profile(m.GetName(), m.GetRevision())
		if err != nil {
			return nil, err
		}
		return &ebbflowv1.GetProfileResponse{Profile: p}, nil
	})
}

func (s *profileService) ListProfiles(ctx context.Context, req *connect.Request[ebbflowv1.ListProfilesRequest]) (*connect.Response[ebbflowv1.ListProfilesResponse], error) {
	m := req.Msg
	var v issues
	size := v.pageSize("page_size", m.GetPageSize())
	after := v.pageToken("page_token", m.GetPageToken())
	return view(ctx, s.Server, m.GetRead(), func(tx *store.Tx) (*ebbflowv1.ListProfilesResponse, error) {
		ps, err := tx.Profiles(after, size+1)
		if err != nil {
			return nil, err
		}
		page, next := trimPage(ps, size, (*ebbflowv1.Profile).GetName)
		return &ebbflowv1.ListProfilesResponse{Profiles: page, NextPageToken: next}, nil
	})
}

func (s *profileService) ListProfileRevisions(ctx context.Context, req *connect.Request[ebbflowv1.ListProfileRevisionsRequest]) (*connect.Response[ebbflowv1.ListProfileRevisionsResponse], error) {
	m := req.Msg
	return view(ctx, s.Server, m.GetRead(), func(tx *store.Tx) (*ebbflowv1.ListProfileRevisionsResponse, error) {
		rs, err := tx.ProfileRevisions(m.GetName())
		if err != nil {
			return nil, err
		}
		return &ebbflowv1.ListProfileRevisionsResponse{Revisions: rs}, nil
	})
}

func (s *profileService) ValidateProfile(_ context.Context, req *connect.Request[ebbflowv1.ValidateProfileRequest]) (*connect.Response[ebbflowv1.ValidateProfileResponse], error) {
	m := req.Msg
	res := profile.Validate(m.GetName(), m.GetSpec())
	return connect.NewResponse(&ebbflowv1.ValidateProfileResponse{
		Valid: len(res.Errors) == 0, Errors: res.Errors, Warnings: res.Warnings, UnvalidatedKeys: res.Unvalidated,
	}), nil
}
