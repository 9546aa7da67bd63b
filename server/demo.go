package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/onebox/onebox/internal/inbox"
)

// demoTeam remembers the demo tenant across restarts of `serve --demo`, so
// a restart keeps the conversations instead of starting a second shop.
type demoTeam struct {
	TenantID  string   `json:"tenant_id"`
	AdminID   string   `json:"admin_id"`
	AgentIDs  []string `json:"agent_ids"`
	ChannelID string   `json:"channel_id"`
}

const demoSettingsKey = "demo_team"

// setupDemo creates (or finds) the demo team and prints fresh access keys.
// Raw keys are never stored, so each start issues new ones and revokes
// those of the previous start.
func setupDemo(ctx context.Context, svc *inbox.Service, store inbox.Store, cfg config, stdout io.Writer) error {
	var team demoTeam
	err := store.View(ctx, func(tx inbox.Tx) error {
		return tx.Get(inbox.Collection{Name: inbox.CollSettings}, demoSettingsKey, &team)
	})
	switch {
	case errors.Is(err, inbox.ErrNotFound):
		team, err = createDemoTeam(ctx, svc, store)
		if err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("read demo settings: %w", err)
	}
	tenant, err := svc.Tenant(ctx, team.TenantID)
	if err != nil {
		return fmt.Errorf("demo tenant: %w", err)
	}
	admin := inbox.Principal{Tenant: tenant, Agent: inbox.Agent{ID: team.AdminID, TenantID: tenant.ID, Role: inbox.RoleAdmin}}
	agents, err := svc.ListAgents(ctx, admin)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nDemo team %q (tenant %s). Access keys for this run:\n", tenant.Name, tenant.ID)
	for _, a := range agents {
		if !a.Active {
			continue
		}
		for _, k := range a.Keys {
			if k.RevokedAt == nil {
				if err := svc.RevokeKey(ctx, admin, a.ID, k.ID); err != nil {
					return err
				}
			}
		}
		_, raw, err := svc.IssueKey(ctx, admin, a.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  %-6s %-16s %s\n", a.Role, a.Name, raw)
	}
	return nil
}

func createDemoTeam(ctx context.Context, svc *inbox.Service, store inbox.Store) (demoTeam, error) {
	t, admin, _, _, err := svc.CreateTenant(ctx, "Demo Shop")
	if err != nil {
		return demoTeam{}, err
	}
	p := inbox.Principal{Tenant: t, Agent: admin}
	team := demoTeam{TenantID: t.ID, AdminID: admin.ID}
	for _, in := range []inbox.NewAgent{
		{Name: "Amara Okafor", Email: "amara@demo.onebox.local", Role: inbox.RoleAgent},
		{Name: "Lukas Schneider", Email: "lukas@demo.onebox.local", Role: inbox.RoleAgent},
	} {
		a, _, _, err := svc.CreateAgent(ctx, p, in)
		if err != nil {
			return demoTeam{}, err
		}
		team.AgentIDs = append(team.AgentIDs, a.ID)
	}
	ch, err := svc.CreateChannel(ctx, p, inbox.ChannelDemo, "Demo customers", nil)
	if err != nil {
		return demoTeam{}, err
	}
	team.ChannelID = ch.ID
	err = store.Update(ctx, func(tx inbox.Tx) error {
		return tx.Put(inbox.Collection{Name: inbox.CollSettings}, demoSettingsKey, team)
	})
	return team, err
}
